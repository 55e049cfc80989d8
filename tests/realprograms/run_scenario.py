#!/usr/bin/env python3
"""Runs one scenario of the real-programs suite natively (this kernel's own
SO_REUSEPORT, no runner, no shim) and emulated (reuseport-legacy-kernel
--kernel 3.2, the shim and reuseportd), and prints both figures.

  run_scenario.py --build DIR --scenario nginx.reload [--mode both|native|emulated]

Fails if emulated loses a request where native lost none. Appends
"<scenario> emulated F/N native F/N" to DIR/realprograms-figures.txt.
"""
import argparse
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import nginx_scenarios  # noqa: E402
import other_scenarios  # noqa: E402

SCENARIOS = {}
SCENARIOS.update(nginx_scenarios.SCENARIOS)
SCENARIOS.update(other_scenarios.SCENARIOS)


def run(build, name, mode):
    with harness.World(build, mode) as world:
        port = harness.free_port()
        try:
            load = SCENARIOS[name](world, port)
        except Exception as e:  # a scenario that cannot finish has failed
            detail = traceback.format_exc(limit=3)
            if world.broker:
                detail += "\nbroker status:\n" + world.broker.status_text()
                detail += "\nbroker log:\n" + world.log("reuseportd")[-2500:]
            for log in sorted(os.listdir(world.dir)):
                if log.endswith(".log") and log != "reuseportd.log":
                    detail += f"\n{log}:\n" + world.log(log[:-4])[-1500:]
            return None, f"{mode}: {e}\n{detail}"
        return load, f"{mode}: {load.summary()}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--mode", default="both", choices=["both", "native", "emulated"])
    args = parser.parse_args()
    build = harness.Build(os.path.abspath(args.build))
    missing = other_scenarios.missing_program(args.scenario)
    if missing:
        print(f"{args.scenario}: {missing} is not installed (scripts/setup.sh installs it)")
        return 1
    results = {}
    for mode in (["native", "emulated"] if args.mode == "both" else [args.mode]):
        load, text = run(build, args.scenario, mode)
        results[mode] = load
        print(text, flush=True)
    def figure(mode):
        load = results.get(mode)
        if mode not in results:
            return "-"
        return "error" if load is None else f"{load.failed}/{load.sent}"
    line = f"{args.scenario} emulated {figure('emulated')} native {figure('native')}"
    print(line)
    with open(os.path.join(build.dir, "realprograms-figures.txt"), "a") as f:
        f.write(line + "\n")
    emulated, native = results.get("emulated", 0), results.get("native", 0)
    if emulated is None:
        return 1
    if emulated and emulated.failed > 0 and (native is None or native == 0 or native.failed == 0):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
