"""The ``dance3d`` command line: a thin layer of subcommands over library calls."""
