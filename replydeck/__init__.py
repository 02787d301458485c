"""replydeck: a terminal inbox for answering customers on social media."""

__version__ = "0.1.0"
