#!/usr/bin/env python3
"""packaging/eval/pool_walks.py on small made-up archives whose pooled losses are known."""
import csv
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "eval",
                      "pool_walks.py")
HEADER = ["report", "device", "walk_seed", "trajectory", "start_pose_x_y_z_yaw_pitch",
          "noise_seed", "cache", "kv_bytes", "rollout_psnr", "loss_vs_bf16",
          "rollout_psnr_vs_bf16_output", "revisit_psnr", "detail_ratio", "ahead_psnr",
          "ahead_loss_vs_bf16"]


def rows(seed, name, caches):
    """caches: [(label, rollout PSNR, 1-ahead PSNR or None)]; the walk is its pose and noise.
    PSNR against BF16's output: 100 for BF16, else 30 minus the rollout loss."""
    bf16 = caches[0][1]
    return [[f"walk-{seed}.json", "cpu", seed, name, f"{seed}.0000 0 0 0 0", 1000 + seed, label,
             100, f"{r:.4f}", "", f"{100 if label == 'BF16' else 30 - (bf16 - r):.4f}", "", "",
             "" if a is None else f"{a:.4f}", ""]
            for label, r, a in caches]


class PoolWalksTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        # Archive 1: walks 1 and 2 with 1-ahead; archive 2: walk 3 (named as one of a batch)
        # and walk 2 again with other numbers, which must not count twice.
        # Rollout losses: A 1, 3, 2; B 2, 2, 1. Paired A - B: +1, -1, -1. 1-ahead (walks 1, 2):
        # A 0.1, 0.3; B 0.4, 0.4; paired A - B: +0.3, +0.1.
        self.paths = []
        for name, walks in (
                ("a.csv", rows(1, "return", [("BF16", 20, 30), ("A", 19, 29.9), ("B", 18, 29.6)])
                 + rows(2, "return", [("BF16", 20, 30), ("A", 17, 29.7), ("B", 18, 29.6)])),
                ("b.csv", rows(3, "return #7", [("BF16", 20, None), ("A", 18, None),
                                                ("B", 19, None)])
                 + rows(2, "return", [("BF16", 10, None), ("A", 0, None), ("B", 10, None)]))):
            path = os.path.join(self.dir.name, name)
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(HEADER)
                w.writerows(walks)
            self.paths.append(path)

    def tearDown(self):
        self.dir.cleanup()

    def table_row(self, out, label, after=""):
        text = out[out.index(after):] if after else out
        line = next(l for l in text.splitlines() if l.startswith(f"| {label} |"))
        return [c.strip() for c in line.strip("|").split("|")]

    def test_pooled_losses_and_pairs(self):
        out = subprocess.run([sys.executable, SCRIPT, "--versus", "B", *self.paths], check=True,
                             capture_output=True, text=True).stdout
        a = self.table_row(out, "A")
        self.assertEqual(a[1], "3")  # walk 2 once
        self.assertEqual(a[2], "+2.000 ± 0.577")
        self.assertEqual(a[3], "2")
        self.assertEqual(a[4], "+0.200 ± 0.100")
        paired = self.table_row(out, "A", after="minus B")
        # mean -1/3, sd 1.1547: (2 * 1.1547 / (1/3))^2 = 48 walks
        self.assertEqual(paired[1:5], ["-0.333 ± 0.667", "3", "1", "48"])
        # median -1; 1 of 3 ahead: two-sided exact p = 2 * (1 + 3) / 8 = 1
        self.assertEqual(paired[5:7], ["-1.000", "1"])
        self.assertEqual(paired[7:9], ["+0.200 ± 0.100", "2"])
        # closer to BF16's output: the rollout differences again (30 - loss), 1 of 3 walks
        self.assertEqual(paired[9:11], ["-0.33 ± 0.67 dB", "1"])

    def test_sign_test(self):
        sys.path.insert(0, os.path.dirname(SCRIPT))
        from pool_walks import sign_test
        self.assertAlmostEqual(sign_test(9, 10), 2 * 11 / 1024)  # 0.0215
        self.assertAlmostEqual(sign_test(1, 10), 2 * 11 / 1024)
        self.assertEqual(sign_test(5, 10), 1.0)
        # 2,504 walks, 1,318 ahead: the normal approximation with continuity correction gives
        # z = (66 - 0.5) / 25.02 = 2.618, p = 0.00885
        self.assertAlmostEqual(sign_test(1318, 2504), 0.00885, delta=0.0002)

    def test_unknown_reference_is_an_error(self):
        r = subprocess.run([sys.executable, SCRIPT, "--versus", "C", *self.paths],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no such cache", r.stderr)


if __name__ == "__main__":
    unittest.main()
