"""``python -m civicsoc``: the same as the ``civicsoc`` command."""

from civicsoc.cli import main

main()
