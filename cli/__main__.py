"""``python -m leadline.cli``: the ``leadline`` command, for a process started from Python."""

from leadline.cli.main import main

main()
