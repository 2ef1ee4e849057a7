"""wkwords: count the words of a text and print them as an escaped HTML table.

A small real CLI for `wrapkit pack --python`: click (pure Python) parses the arguments,
markupsafe escapes the HTML with its C extension (`markupsafe._speedups`), `--versions` also
shows charset_normalizer's mypyc-compiled detector and certifi's CA bundle (a real file), and
the stop words come from a data file beside the script, opened through `__file__`.
"""

import collections
import os
import sys

import click
import markupsafe

HERE = os.path.dirname(os.path.abspath(__file__))


def stop_words():
    with open(os.path.join(HERE, "data", "stopwords.txt"), encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip()}


@click.command()
@click.argument("text", nargs=-1)
@click.option("--top", default=3, show_default=True, help="How many words to show.")
@click.option("--versions", is_flag=True, help="Print the packages' versions and exit.")
def main(text, top, versions):
    """Count the words of TEXT (or standard input) and print the TOP ones as HTML."""
    if versions:
        from importlib.metadata import version

        click.echo(f"click {version('click')}")
        click.echo(f"markupsafe {version('markupsafe')} ({markupsafe.escape.__module__})")
        import certifi
        import charset_normalizer.md

        compiled = charset_normalizer.md.__file__.endswith(".so")
        click.echo(f"charset-normalizer {version('charset-normalizer')} (compiled: {compiled})")
        click.echo(f"certifi {version('certifi')} (bundle is a file: {os.path.isfile(certifi.where())})")
        click.echo(f"python {sys.version_info[0]}.{sys.version_info[1]}")
        return
    words = " ".join(text) if text else sys.stdin.read()
    skip = stop_words()
    counts = collections.Counter(w for w in words.lower().split() if w not in skip)
    click.echo("<table>")
    for word, n in counts.most_common(top):
        click.echo(markupsafe.Markup("<tr><td>{}</td><td>{}</td></tr>").format(word, n))
    click.echo("</table>")


if __name__ == "__main__":
    main()
