"""What an interrupted command says: shared by the console script's entry and the CLI's root
(a module of its own so the entry imports nothing heavy)."""
from __future__ import annotations

# Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
# What an interrupted command prints on stderr, on a line of its own (the terminal echoed ^C
# where the cursor was).
INTERRUPTED_LINE = "\ninterrupted: stopped\n"
