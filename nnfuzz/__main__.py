"""``python -m nnfuzz``: the same as the ``nnfuzz`` command."""

from nnfuzz.cli import main

main(prog_name="nnfuzz")
