"""``python -m nnfuzz``: the same as the ``nnfuzz`` command."""

from nnfuzz.entry import main

main()
