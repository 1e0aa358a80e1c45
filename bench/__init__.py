"""durox's benchmark: durox, its peers and the machine's own limits, measured in one run.

A figure is only worth its comparison, so every number the report prints comes from the same
invocation, on the same machine, at the same durability level. `python -m bench --help`;
`bash bench/run.sh` sets up the benchmark's own virtualenv (peers are never installed into the
project's environment) and runs the full mode.
"""
