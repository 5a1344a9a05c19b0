"""`python3 -m bench [--scenario reads|automation] ...`: the read/write benchmark (default) or the automation one."""

import argparse
import sys

parser = argparse.ArgumentParser(add_help=False)
parser.add_argument("--scenario", choices=("reads", "automation"), default="reads")
known, rest = parser.parse_known_args(sys.argv[1:])
if known.scenario == "automation":
    from bench.automation import main as automation_main

    automation_main(rest)
else:
    from bench.runner import main

    main(rest)
