"""Markdown table for bench/results/sor.json: per case, each system's total
iterations and seconds, with ratios against the case's reference systems
(best-fixed and instance-optimal for the synthetic sequences; SSOR-CG with
omega = 1 and plain CG for the heat equation)."""
import json
import sys


def main(json_path, md_path):
    with open(json_path) as f:
        data = json.load(f)
    by_case = {}
    for r in data["records"]:
        by_case.setdefault(r["case"], {}).setdefault(r["system"], {})[r["metric"]] = r["value"]
    lines = ["# sor benchmark", "",
             f"Machine: {data['machine']}. Command: `{data['command']}`. "
             "Iterations are totals over the sequence (a solve that does not converge counts "
             "as max_iterations); seconds are summed solve times.", ""]
    for case, systems in by_case.items():
        if case.startswith("synthetic"):
            refs = ["best-fixed", "instance-optimal"]
        else:
            refs = ["ssor-omega1", "cg"]
        rows = {s: m for s, m in systems.items() if "iterations" in m}
        if not rows:
            continue
        lines += [f"## {case}", "",
                  "| system | iterations | seconds | " + " | ".join(f"{r} iterations / these" for r in refs) + " |",
                  "|---|---|---|" + "---|" * len(refs)]
        for system, m in rows.items():
            ratios = []
            for ref in refs:
                if ref in rows and m["iterations"] > 0:
                    ratios.append(f"{rows[ref]['iterations'] / m['iterations']:.2f}x")
                else:
                    ratios.append("")
            lines.append(f"| {system} | {int(m['iterations']):,} | {m['seconds']:.3f} | "
                         + " | ".join(ratios) + " |")
        if "omega" in systems.get("best-fixed", {}):
            lines += ["", f"best fixed omega in hindsight: {systems['best-fixed']['omega']:.2f}"]
        lines.append("")
    throughput = {(c, s): m["bytes_per_second"] for c, ss in by_case.items()
                  for s, m in ss.items() if "bytes_per_second" in m}
    if throughput:
        lines += ["## Throughput", "",
                  "Bytes a kernel must move at least (CSR once, its vectors once) over its time, "
                  "each kernel timed on its own through the solver's CPU backend.",
                  "", "| case | kernel | GB/s |", "|---|---|---|"]
        for (case, system), v in throughput.items():
            lines.append(f"| {case} | {system} | {v / 1e9:.2f} |")
        lines.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
