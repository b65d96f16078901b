"""``python -m fermion`` is the ``fermion`` command."""

from fermion.cli import main

if __name__ == "__main__":
    main(prog_name="fermion")
