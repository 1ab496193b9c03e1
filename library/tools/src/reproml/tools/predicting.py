"""`make predict`: the workspace's model through the team's own ``predict`` (the contract),
or a release's model in its own environment (serving.py). Apart from serving, so labelling
rows with the workspace's model loads none of the rebuild machinery."""

import argparse


def run_predict(args: argparse.Namespace) -> int:
    """`make predict`: the workspace's model here, or a release's in its own environment."""
    if args.version:
        from .serving import predict_with_release

        print(f"wrote {predict_with_release(args.version, args.features, args.out)}")
        return 0
    from .settings import team

    contract = team()
    print(f"wrote {contract.predict(contract.load_params(args.params), args.features, args.out)}")
    return 0
