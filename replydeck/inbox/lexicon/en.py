"""English sentiment lexicon for customer messages, -4 (worst) .. +4 (best).

Written for support traffic: words customers use about products, service and money.
Multi-word entries are matched before single words.
"""

from __future__ import annotations

_NEG4 = """
worst horrible horrendous atrocious abysmal disgusting furious outraged scam scammed
scammers fraud fraudulent criminal thieves theft nightmare hate hated hateful unacceptable
pathetic disgraceful disgusted appalling appalled livid
"""
_NEG3 = """
terrible awful useless rubbish garbage trash incompetent ridiculous angry awful dreadful
lousy shameful shocking disappointing disappointed disappointment unhappy hopeless
unreliable ripoff rip-off liar liars lying lied misleading deceptive dishonest rude
insulting frustrated frustrating infuriating annoyed annoying worthless pissed broken
failure failed fails failing ruined ruin stolen robbed hostile furious disaster disastrous
sucks sucked crap crappy shitty shit damn wtf fuming unusable inexcusable neglected ignored
ignoring betrayed cheated incompetence negligent
"""
_NEG2 = """
bad poor slow sad upset worse wrong problem problems error errors bug bugs
buggy glitch glitchy crash crashed crashes crashing fail missing lost confusing confused
complicated difficult inconvenient inconvenience expensive overpriced overcharged
delay delayed delays late waiting waited unanswered unresolved refund refunded
complaint complain complaining complained concern concerned worried worry stuck outage
down dead freeze frozen freezes hang hangs laggy lag unstable annoyance mess messy sloppy
careless unprofessional unhelpful clueless damaged
defective faulty leak leaked hacked compromised locked blocked banned suspended spam
disconnected declined denied rejected unfair fake mistake mistakes regret regretting
lacking lackluster mediocre meh bored boring tired sick fed-up nonsense pointless
"""
_NEG1 = """
unfortunately unclear odd weird strange minor confusing issue issues cancel cancelled
canceled cancelling hmm doubt doubtful
unsure uncertain inconsistent limited lacks lack unavailable pending waiting
"""
_POS1 = """
ok okay fine fair decent alright acceptable works resolved fixed solved sorted
clear helpful polite reasonable interesting quick fast easy simple
"""
_POS2 = """
good nice glad happy pleased thanks thank thankful grateful appreciate appreciated
appreciation useful reliable smooth friendly kind responsive efficient recommend
recommended enjoy enjoyed enjoying liked cool great improved improvement
impressive impressed satisfied satisfying patient supportive prompt
"""
_POS3 = """
excellent awesome amazing fantastic wonderful brilliant superb lovely love loved loving
perfect delighted outstanding incredible terrific best favourite favorite beautiful
thrilled stellar exceptional lifesaver
"""
_POS4 = """
phenomenal flawless magnificent extraordinary exceptional superb heroes hero
"""

WORDS: dict[str, float] = {}
for _score, _block in ((-4, _NEG4), (-3, _NEG3), (-2, _NEG2), (-1, _NEG1),
                       (1, _POS1), (2, _POS2), (3, _POS3), (4, _POS4)):
    for _w in _block.split():
        WORDS.setdefault(_w, float(_score))

#: Multi-word expressions, matched as whole words before single words.
PHRASES: dict[str, float] = {
    "not working": -2.5, "doesn't work": -2.5, "does not work": -2.5, "don't work": -2.5,
    "stopped working": -2.5, "no longer works": -2.5, "can't log in": -2.5,
    "cannot log in": -2.5, "can't login": -2.5, "can't sign in": -2.5, "locked out": -2.5,
    "waste of money": -3.5, "waste of time": -3.0, "rip off": -3.5, "fed up": -3.0,
    "sick of": -3.0, "tired of": -2.5, "never again": -3.0, "no response": -2.5,
    "no reply": -2.5, "no answer": -2.0, "still waiting": -2.5, "still broken": -3.0,
    "still not": -2.0, "still nothing": -2.5, "still no": -2.0, "charged twice": -3.0, "double charged": -3.0, "lost my": -2.5,
    "worst service": -4.0, "customer service sucks": -4.0, "fix this": -1.5,
    "nothing works": -3.0, "nothing loads": -2.5, "got nothing": -2.0, "heard nothing": -2.0,
    "without warning": -2.0, "deleted my": -2.0, "not one reply": -2.5,
    "not a single reply": -2.5, "what a joke": -3.0, "a joke": -2.0, "give up": -2.0, "giving up": -2.0,
    "thank you": 2.0, "thanks a lot": 2.5, "thanks so much": 3.0, "much appreciated": 2.5,
    "well done": 2.5, "good job": 2.5, "great job": 3.0, "great work": 3.0,
    "works great": 3.0, "works perfectly": 3.0, "works now": 2.0, "all good": 2.0,
    "no problem": 1.5, "no problems": 1.5, "no issue": 1.5, "no issues": 1.5,
    "no worries": 1.5, "love it": 3.0, "big fan": 2.5, "keep it up": 2.5,
    "five stars": 3.0, "5 stars": 3.0, "one star": -3.0, "1 star": -3.0,
    "highly recommend": 3.5, "not bad": 1.0, "not too bad": 1.0, "not terrible": 0.5,
}

#: Words that turn the sense of the next few words around.
NEGATORS = frozenset("""
not no never none nobody nothing neither nor without hardly barely isn't aren't wasn't
weren't don't doesn't didn't can't cannot couldn't won't wouldn't shouldn't haven't hasn't
hadn't ain't nope nowhere
""".split())

#: Intensifiers (+) and dampeners (-), added to the magnitude of the next sentiment word.
BOOSTERS: dict[str, float] = {
    **dict.fromkeys("""very so really extremely absolutely totally completely utterly
    incredibly insanely super highly truly seriously deeply especially entirely
    exceptionally extraordinarily hugely immensely most purely quite remarkably such
    thoroughly unbelievably fucking freaking bloody damn way""".split(), 0.3),
    **dict.fromkeys("""slightly somewhat kinda sorta barely hardly marginally partly
    occasionally little bit""".split(), -0.3),
}

#: Words after which the rest of a sentence carries more weight ("nice app, but ...").
CONTRAST = frozenset({"but", "however", "although", "though", "yet"})

EMOJI: dict[str, float] = {
    "😡": -3.0, "🤬": -3.5, "😠": -2.5, "😤": -2.0, "💢": -2.0, "😞": -2.0, "😢": -2.0,
    "😭": -2.0, "😩": -2.0, "😫": -2.0, "🙄": -1.5, "👎": -2.0, "💩": -2.5, "😒": -1.5,
    "😔": -1.5, "😕": -1.0, "☹": -2.0, "🙁": -1.5,
    "😊": 2.0, "😀": 2.0, "😃": 2.0, "😄": 2.0, "😁": 2.0, "🙂": 1.0, "😍": 3.0,
    "🥰": 3.0, "❤": 2.5, "💕": 2.5, "👍": 2.0, "👏": 2.0, "🙏": 1.5, "🎉": 2.0, "✨": 1.0,
    "💯": 2.0, "😂": 1.0, "🤣": 1.0,
}
