"""The scripted content of the demo source: people, what they write, and where.

The brand is "Kestrel", a small shop with an app. Texts come in English and Japanese;
``{order}`` is filled with an order number and ``{first}`` with the customer's first name.
Hostile texts are not here: they come from ``demo_hostile.jsonl`` (the shared corpus).
"""

from __future__ import annotations

from replydeck.inbox.model import Kind

PLATFORMS = ("x", "instagram", "facebook", "mastodon", "bluesky", "email")

BRAND_NAME = "Kestrel Support"
BRAND_HANDLES = {
    "x": "kestrel_help",
    "instagram": "kestrel.shop",
    "facebook": "Kestrel",
    "mastodon": "kestrel@mastodon.example",
    "bluesky": "kestrel.bsky.social",
    "email": "help@kestrel.example",
}

#: (handle, display name). Email addresses are made from the handle.
PEOPLE = {
    "en": [
        ("maya_codes", "Maya Okafor"), ("dwhitfield", "Dan Whitfield"),
        ("priya.sharma", "Priya Sharma"), ("tom_kowalski", "Tom Kowalski"),
        ("lucia.ramos", "Lucía Ramos"), ("benadler", "Ben Adler"),
        ("chloe_bakes", "Chloe Martin"), ("sam_rivera", "Sam Rivera"),
        ("olu_dev", "Olu Adeyemi"), ("hannah.kim", "Hannah Kim"),
        ("marcus_t", "Marcus Thompson"), ("ingrid_n", "Ingrid Nilsen"),
        ("rafa_gomez", "Rafael Gómez"), ("zoe.w", "Zoë Williams"),
    ],
    "ja": [
        ("yuki_tanaka", "田中 由紀"), ("kenji_sato", "佐藤 健二"), ("haruka_m", "松本 遥"),
        ("sora_k", "小林 空"), ("aoi_nakamura", "中村 葵"), ("ren_ito", "伊藤 蓮"),
        ("mei_w", "渡辺 芽衣"), ("daiki_y", "山本 大輝"), ("hina_suzuki", "鈴木 陽菜"),
        ("takumi_k", "加藤 拓海"),
    ],
}

#: The account whose complaint everyone sees.
HIGH_FOLLOWER = ("gadgetgrace", "Grace Liu | Tech Reviews", 250_000)

SPAMMERS = {
    "en": ("growth_hacker_2024", "💰 Grow Fast 💰"),
    "ja": ("fukugyo_master", "副業マスター🔥"),
}

#: A display name that tries to be markup and to blink the terminal.
HOSTILE_NAME = ("not_an_admin", "[bold red]ADMIN[/] \x1b[5mofficial\x1b[0m")

#: Where each kind of message plausibly arrives: (platform, kind).
PUBLIC = [("x", Kind.MENTION), ("mastodon", Kind.MENTION), ("bluesky", Kind.MENTION),
          ("instagram", Kind.COMMENT), ("facebook", Kind.COMMENT)]
PRIVATE = [("x", Kind.DM), ("instagram", Kind.DM), ("facebook", Kind.DM),
           ("mastodon", Kind.DM), ("bluesky", Kind.DM), ("email", Kind.EMAIL)]
WHERE = {
    "shipping": [("x", Kind.MENTION), ("instagram", Kind.DM), ("facebook", Kind.DM),
                 ("email", Kind.EMAIL), ("mastodon", Kind.MENTION)],
    "password": [("email", Kind.EMAIL), ("x", Kind.DM), ("facebook", Kind.DM),
                 ("bluesky", Kind.DM)],
    "hours": [("facebook", Kind.COMMENT), ("instagram", Kind.COMMENT), ("x", Kind.MENTION),
              ("mastodon", Kind.MENTION)],
    "pricing": [("x", Kind.MENTION), ("bluesky", Kind.MENTION), ("instagram", Kind.COMMENT),
                ("email", Kind.EMAIL)],
    "complaint": [("x", Kind.MENTION), ("facebook", Kind.COMMENT), ("instagram", Kind.COMMENT),
                  ("email", Kind.EMAIL), ("bluesky", Kind.MENTION)],
    "outage": [("x", Kind.MENTION), ("bluesky", Kind.MENTION), ("mastodon", Kind.MENTION),
               ("facebook", Kind.COMMENT), ("instagram", Kind.DM)],
    "refund": [("email", Kind.EMAIL), ("x", Kind.DM), ("facebook", Kind.DM),
               ("instagram", Kind.DM)],
    "legal": [("email", Kind.EMAIL), ("x", Kind.MENTION), ("facebook", Kind.DM)],
    "praise": [("x", Kind.MENTION), ("instagram", Kind.COMMENT), ("mastodon", Kind.MENTION),
               ("bluesky", Kind.MENTION), ("facebook", Kind.REVIEW)],
    "spam": [("x", Kind.MENTION), ("instagram", Kind.COMMENT), ("facebook", Kind.COMMENT)],
    "hostile": PUBLIC + PRIVATE,
}

TEXTS: dict[str, dict[str, list[str]]] = {
    "shipping": {
        "en": [
            "How long does shipping to Canada usually take? Ordered on Monday ({order})",
            "Hi! My order {order} still says 'label created' after 5 days. When will it ship?",
            "Do you ship to Ireland, and how long does it take?",
            "Where is my package? Tracking for {order} hasn't moved since Tuesday.",
        ],
        "ja": [
            "注文{order}の配送にはどれくらいかかりますか？",
            "5日前に注文したのにまだ発送されていません。いつ届きますか？（{order}）",
            "北海道への配送は何日くらいかかりますか？",
        ],
    },
    "password": {
        "en": [
            "I can't reset my password, the reset email never arrives. Checked spam too.",
            "Password reset link says 'expired' every time I click it. Help?",
            "Locked out of my account after changing phones. How do I reset my password?",
        ],
        "ja": [
            "パスワード再設定のメールが届きません。迷惑メールフォルダも確認しました。",
            "パスワードをリセットしようとすると「リンクの有効期限切れ」と表示されます。",
        ],
    },
    "hours": {
        "en": [
            "What are your opening hours on Sunday?",
            "Is the Shoreditch store open on bank holidays?",
            "What time does customer support close today?",
        ],
        "ja": [
            "日曜日の営業時間を教えてください。",
            "祝日も店舗は営業していますか？",
        ],
    },
    "pricing": {
        "en": [
            "How much is the Pro plan per month? Is there a student discount?",
            "Is the price on the website in USD or EUR? Checkout shows a different total.",
            "Do you price-match? Saw the same kettle 15% cheaper elsewhere.",
        ],
        "ja": [
            "Proプランの料金はいくらですか？学割はありますか？",
            "年払いにすると割引はありますか？",
        ],
    },
    "complaint": {
        "en": [
            "Order {order} arrived broken. Second time this month. Really disappointed.",
            "Charged twice for {order}. Please fix this today.",
            "Waited 40 minutes on hold and got disconnected. Terrible service.",
            "The replacement you sent is the wrong size. Again.",
        ],
        "ja": [
            "届いた商品が壊れていました。注文番号{order}です。",
            "二重に請求されています。早急に対応してください。",
            "サポートに何度連絡しても返事がありません。",
        ],
    },
    "outage": {
        "en": [
            "is the app down? can't log in for the last 10 min",
            "app is down for me too. Error 503 at checkout",
            "Your app keeps crashing on launch. Is there an outage??",
            "Down for everyone or just me? 'Something went wrong' on every page",
            "Website AND app down. I have an order to place today!",
        ],
        "ja": [
            "アプリが開けません。障害ですか？",
            "ログインできない…障害発生中？",
            "決済画面でエラーが出ます。障害でしょうか",
        ],
    },
    "refund": {
        "en": [
            "I want a refund for {order}. Not a voucher. A refund.",
            "Returned {order} three weeks ago and still no refund. Where is my money?",
            "Cancel my subscription and refund this month, I never used it.",
        ],
        "ja": [
            "注文{order}を返品しました。返金はいつになりますか？",
            "返金してください。クーポンではなく返金を希望します。",
        ],
    },
    "legal": {
        "en": [
            "If {order} isn't refunded by Friday my lawyer will be in touch. "
            "I'm prepared to file a lawsuit.",
        ],
        "ja": [
            "このまま対応していただけないなら、弁護士に相談して訴訟も検討します。",
        ],
    },
    "praise": {
        "en": [
            "Just wanted to say your support team is amazing. Sorted in 5 minutes!",
            "The new kettle is gorgeous. Best purchase this year ☕",
            "Shoutout to whoever packed {order}, the handwritten note made my day",
        ],
        "ja": [
            "いつも素早い対応ありがとうございます！",
            "新しいケトル、とても使いやすいです☕",
        ],
    },
    "spam": {
        "en": [
            "🚀 Get 10k REAL followers FAST → grow-fast.example/promo 🚀🚀",
            "Congratulations! You won a gift card. Claim at prize.example before it expires",
        ],
        "ja": [
            "【副業】スマホだけで月100万円！詳しくはプロフィールのリンクから💰",
        ],
    },
}

SUBJECTS = {
    "shipping": {"en": "Shipping time for my order", "ja": "配送について"},
    "password": {"en": "Password reset not working", "ja": "パスワード再設定について"},
    "hours": {"en": "Opening hours", "ja": "営業時間について"},
    "pricing": {"en": "Question about pricing", "ja": "料金について"},
    "complaint": {"en": "Problem with my order", "ja": "商品の不具合"},
    "outage": {"en": "Can't log in", "ja": "ログインできません"},
    "refund": {"en": "Refund request", "ja": "返金のお願い"},
    "legal": {"en": "Final notice before legal action", "ja": "法的措置について"},
    "praise": {"en": "Thank you!", "ja": "お礼"},
    "hostile": {"en": "urgent", "ja": "至急"},
}

#: The same customer, writing again while nobody has answered.
NUDGES = {
    "en": [
        "Hello?? Still waiting on this.",
        "It's been over an hour. Is anyone there?",
        "Third message now. Is anyone actually reading these?",
        "Any update? I need this sorted today.",
    ],
    "ja": [
        "まだ返事がありません。確認してもらえますか？",
        "もう1時間以上待っています。",
        "何度も連絡していますが、どなたか見ていますか？",
    ],
}

#: A customer answering in a thread after we replied.
THREAD_REPLIES = {
    "en": [
        "Thanks! But the link you sent gives a 404.",
        "Sent you the order number in DM. Still not fixed though.",
        "Tried that, same error. What now?",
    ],
    "ja": [
        "ありがとうございます。でもまだ解決していません。",
        "教えていただいた方法を試しましたが、同じエラーが出ます。",
    ],
}

#: Replies someone on the team sent from the platform's phone app (outbound, not replydeck):
#: "thanks" answers praise, "help" everything else.
OUTBOUND = {
    "help": {
        "en": [
            "Hi {first}, sorry about this! Could you DM us your order number so we can check?",
            "Thanks for flagging, {first}. The team is on it and we'll update you here.",
            "Hi {first}, we've just sent you a DM with the next steps.",
        ],
        "ja": [
            "{first}様、ご不便をおかけして申し訳ありません。注文番号をDMでお知らせいただけますか？",
            "{first}様、ご連絡ありがとうございます。担当チームが確認しております。",
        ],
    },
    "thanks": {
        "en": [
            "So glad to hear it, {first}! Thank you 💙",
            "That made our day, {first}. Thanks for letting us know!",
        ],
        "ja": [
            "{first}様、温かいお言葉ありがとうございます！",
        ],
    },
}

#: Which corpus entries the backlog always shows (the 20 kB one among them).
BACKLOG_HOSTILE = ("rich-markup-action", "ansi-colour", "osc-52-clipboard", "bidi-override",
                   "very-long-message")

#: Live traffic: relative weight of each kind of new conversation.
LIVE_WEIGHTS = {
    "shipping": 12, "password": 10, "hours": 8, "pricing": 8, "complaint": 14, "outage": 3,
    "refund": 7, "legal": 1, "praise": 12, "spam": 8, "hostile": 5,
}
