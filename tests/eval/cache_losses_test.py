#!/usr/bin/env python3
"""packaging/eval/cache_losses.py on small made-up reports whose losses are known."""
import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "eval",
                      "cache_losses.py")


def run(label, cache, rollout, ahead):
    """One cache's run: every frame at the same PSNR, so the means are exact."""
    r = {"label": label, "cache": cache, "kv_bytes": 1000 if cache == "bf16" else 250,
         "rollout": {"mean_psnr": rollout, "psnr": [rollout] * 8},
         "psnr_vs_bf16": [100.0 if cache == "bf16" else 30.0] * 8}
    if ahead is not None:
        r["ahead"] = {"mean_psnr": ahead, "psnr_vs_bf16": [100.0 if cache == "bf16" else 40.0] * 8}
    return r


def report(seed, caches):
    """caches: [(label, cache, rollout PSNR, 1-ahead PSNR or None)], BF16 first."""
    return {"model": "m.safetensors", "device": "cpu", "options": {"world_seed": 1,
                                                                    "walk_seed": seed},
            "trajectories": [{"name": "return", "noise_seed": seed, "generated_frames": 8,
                              "start_pose": {"x": float(seed), "y": 0.0, "z": 0.0,
                                             "yaw_deg": 0.0, "pitch_deg": 0.0},
                              "runs": [run(*c) for c in caches]}]}


class CacheLossesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.paths = []
        # Two walks. Rollout losses: A 1.0 and 3.0, B 2.0 and 2.0; 1-ahead: A 0.1 and 0.3,
        # B 0.4 and 0.4. Paired, A minus B: rollout +1.0 and -1.0, 1-ahead +0.3 and +0.1.
        for seed, (ra, rb, aa, ab) in ((5, (19.0, 18.0, 29.9, 29.6)),
                                       (6, (17.0, 18.0, 29.7, 29.6))):
            path = os.path.join(self.dir.name, f"walk-{seed}.json")
            with open(path, "w") as f:
                json.dump(report(seed, [("BF16", "bf16", 20.0, 30.0), ("A", "qvg", ra, aa),
                                        ("B", "kivi", rb, ab)]), f)
            self.paths.append(path)

    def tearDown(self):
        self.dir.cleanup()

    def losses(self, *args):
        out = subprocess.run([sys.executable, SCRIPT, *args, *self.paths], check=True,
                             capture_output=True, text=True).stdout
        return out

    def test_losses_and_pairs(self):
        out = self.losses("--versus", "B")
        row = next(l for l in out.splitlines() if l.startswith("| A |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        self.assertEqual(cells[2], "2")            # walks
        self.assertEqual(cells[4], "+2.000 ± 1.000")  # rollout loss, mean ± standard error
        self.assertEqual(cells[7], "+0.200 ± 0.100")  # 1-ahead loss
        tables = out.split("\n\n")
        rollout = next(t for t in tables if "rollout PSNR minus B's" in t)
        ahead = next(t for t in tables if "1-ahead PSNR minus B's" in t)
        self.assertIn("| A | +0.000 ± 1.000 | 1 | 2 |", rollout)
        self.assertIn("| A | +0.200 ± 0.100 | 2 | 2 |", ahead)

    def test_csv_keeps_every_walk_and_both_measures(self):
        path = os.path.join(self.dir.name, "walks.csv")
        self.losses("--csv", path)
        with open(path) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 6)  # 2 walks x 3 caches
        a5 = next(r for r in rows if r["cache"] == "A" and r["walk_seed"] == "5")
        self.assertEqual(a5["loss_vs_bf16"], "1.0000")
        self.assertEqual(a5["ahead_psnr"], "29.9000")
        self.assertEqual(a5["ahead_loss_vs_bf16"], "0.1000")

    def test_unknown_versus_label_is_a_clear_error(self):
        p = subprocess.run([sys.executable, SCRIPT, "--versus", "C", *self.paths],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no such cache", p.stderr)


if __name__ == "__main__":
    unittest.main()
