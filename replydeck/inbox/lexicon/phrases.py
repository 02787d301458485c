"""Default triage phrase groups: what a phrase says about how urgent a message is.

Each group has a label used in reasons ("phrase 'lawsuit' (legal threat) +45"), a weight
added once per group however many of its phrases appear, a tag added to the conversation,
and whether it marks the message as a complaint. Phrases are matched after NFKC
normalisation and casefolding, as whole words for Latin text and as substrings for
Japanese, so ＲＥＦＵＮＤ, Refund and refund all match.
"""

from __future__ import annotations

# name: (label, weight, tag, complaint, phrases)
DEFAULT_GROUPS: dict[str, tuple[str, float, str, bool, tuple[str, ...]]] = {
    "legal": (
        "legal threat", 45, "legal", True,
        (
            "lawyer", "lawyers", "attorney", "lawsuit", "sue you", "suing", "legal action",
            "class action", "small claims", "take you to court", "see you in court", "consumer protection", "ombudsman",
            "report you to", "trading standards", "ftc", "bbb",
            "訴訟", "訴える", "訴えます", "弁護士", "法的措置", "裁判", "消費者センター",
            "消費者庁", "国民生活センター", "警察に", "被害届",
        ),
    ),
    "security": (
        "security", 45, "security", True,
        (
            "hacked", "data leak", "data breach", "leaked", "breach", "compromised",
            "account takeover", "stolen", "phishing", "scam", "fraud", "fraudulent",
            "unauthorized", "unauthorised", "someone logged into", "password reset i didn't",
            "乗っ取り", "乗っ取られ", "不正アクセス", "不正ログイン", "情報漏洩", "情報漏えい",
            "個人情報", "流出", "漏洩", "なりすまし", "詐欺", "フィッシング", "不正利用",
        ),
    ),
    "backlash": (
        "public backlash", 40, "backlash", True,
        (
            "boycott", "going viral", "everyone should know", "retweet this", "spread the word",
            "never buying", "never again", "journalist", "going to the press",
            "炎上", "拡散", "拡散希望", "晒す", "二度と使わない", "不買",
        ),
    ),
    "outage": (
        "outage", 30, "outage", True,
        (
            "outage", "is down", "are down", "went down", "down again", "site down", "app down",
            "server down", "service down", "servers down", "not working", "doesn't work", "does not work",
            "stopped working", "broken", "can't log in", "cannot log in", "can't login",
            "cannot login", "can't sign in", "cannot sign in", "unable to log in",
            "locked out", "error 500", "500 error", "502", "503", "crash", "crashes",
            "crashing", "keeps crashing", "won't load", "not loading", "lost my data",
            "data loss", "all my data", "deleted my",
            "障害", "ログインできない", "ログインできません", "サインインできない",
            "繋がらない", "つながらない", "落ちてる", "落ちている", "使えない", "使えません",
            "動かない", "動きません", "起動しない", "エラーが出", "開けない", "表示されない",
            "データが消え", "不具合", "バグ",
        ),
    ),
    "billing": (
        "billing", 20, "billing", True,
        (
            "refund", "refunds", "chargeback", "charge back", "charged twice", "double charged",
            "overcharged", "money back", "dispute", "billing error", "charged me",
            "返金", "二重請求", "二重に請求", "不正請求", "引き落とし", "お金を返", "返品",
        ),
    ),
    "churn": (
        "cancellation", 20, "churn", True,
        (
            "cancel", "cancelling", "canceling", "cancellation", "unsubscribe",
            "close my account", "delete my account", "switching to", "moving to",
            "解約", "退会", "やめます", "乗り換え", "アカウント削除",
        ),
    ),
}
