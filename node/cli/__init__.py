"""The `iarms-node` command line: one module per command group.

`parser` builds the argument parser from each group's `add_commands`
(`lifecycle`: init, migrate, run, identity, rotate-key; `records`; `custody`; `users`;
`peers`; `lookups`: lookup and hits; `evidence`; `trace`; `stats`; `audit`), then runs the
chosen command's handler. A group module declares its parsers with nothing
but argparse; what a command needs (the node's services through
`node.app`, the keys, the HTTP server) it imports when it runs, so that
`iarms-node --help` or `peers list` loads only what it uses.

Exit status: 0 success; 1 an error (one line on stderr); 2 bad arguments, or
a database whose schema this code cannot use (`iarms-node migrate` brings
an older one up to date); 3 an import that stored the good rows but
rejected some, or a trace request refused as incomplete (nothing sent);
130 interrupted; 141 standard output closed early (`iarms-node hits |
head -1`), the status a shell shows for a program ended by SIGPIPE.
"""

from node.cli.parser import main

__all__ = ["main"]
