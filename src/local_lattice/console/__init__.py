"""What the ``lattice`` command shows people: the start banner, ``ps``, ``doctor`` and ``demo``.

Each module builds its text from the gateway (in-process) or from a running gateway over HTTP and
returns rich renderables and exit codes; ``cli.py`` only parses options and prints.
"""
