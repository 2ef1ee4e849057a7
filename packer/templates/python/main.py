"""A small wrapkit app run by this machine's Python, bundled with it.

`wrapkit pack {{name}}` packs the interpreter, its standard library (precompiled), this script,
the module beside it and its data into ./{{name}}.run, which runs where no Python is installed.
Files next to this script are real files at run time, found through __file__.
"""
import sys

import greeting

who = sys.argv[1] if len(sys.argv) > 1 else "world"
print(greeting.hello(who))
print(f"({{name}}, Python {sys.version_info.major}.{sys.version_info.minor})")
