"""`python -m components [--host H] [--port P]`: serve the studio (what `rlhf-studio ui` runs)."""

import argparse

from components.app import main

parser = argparse.ArgumentParser(prog="rlhf-studio ui")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=7860)
args = parser.parse_args()
main(args.host, args.port)
