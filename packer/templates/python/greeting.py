"""The greeting, read from data/greeting.txt beside this module."""
import pathlib

_TEXT = (pathlib.Path(__file__).parent / "data" / "greeting.txt").read_text().strip()


def hello(who: str) -> str:
    return f"{_TEXT}, {who}!"
