"""``python -m local_lattice`` runs the ``lattice`` command line."""

from local_lattice.cli import main

main()
