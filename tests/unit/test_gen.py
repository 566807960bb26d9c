#!/usr/bin/env python3
"""Checks scripts/gen-province on its `tiny` preset: deterministic for a seed,
columns exactly as SPEC.md, every clean ID valid and agreeing with its region
and birth date, realistic households, and every corrupted or dirty row damaged
in the way its truth row says."""

import collections
import csv
import datetime
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(ROOT, "scripts", "gen-province")

# SPEC.md "Feeds", transcribed here on purpose: the generator must agree with
# the contract, not with itself.
SPEC_COLUMNS = {
    "registry": "household_id region_code household_type exit_year id_number name relation "
                "disability_grade chronic_illness labour phone annual_net_income",
    "medical": "record_id id_number name settle_date total_cost compliant_cost reimbursed "
               "self_paid",
    "civil": "record_id id_number name event_date kind amount disability_grade",
    "disaster": "record_id id_number event_date disaster_type loss_amount house_damage",
    "education": "record_id id_number name event_date stage cost aid",
    "income": "record_id id_number period amount kind",
    "declaration": "record_id id_number name event_date reason amount description",
    "visit": "record_id household_id visit_date visitor risk_factor income_estimate note",
}
REQUIRED = {
    "medical": "record_id id_number name settle_date total_cost reimbursed self_paid",
    "civil": "record_id id_number name event_date kind",
    "disaster": "record_id id_number event_date disaster_type loss_amount",
    "education": "record_id id_number name event_date stage cost",
    "income": "record_id id_number period amount",
    "declaration": "record_id id_number name event_date reason",
    "visit": "record_id household_id visit_date visitor",
}
MONEY = {"total_cost", "compliant_cost", "reimbursed", "self_paid", "amount", "loss_amount",
         "cost", "aid", "income_estimate"}
DATES = {"settle_date", "event_date", "visit_date"}
IDENTITY_KINDS = {"name_typo", "homophone", "traditional", "id_swap", "missing_id", "old_id15"}

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_char(first17):
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def id_valid(idn):
    if len(idn) != 18 or not idn[:17].isdigit() or check_char(idn[:17]) != idn[17]:
        return False
    try:
        datetime.date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14]))
    except ValueError:
        return False
    return True


def load_generator():
    loader = importlib.machinery.SourceFileLoader("gen_province", GEN)
    spec = importlib.util.spec_from_loader("gen_province", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def generate(out, *extra):
    subprocess.run([sys.executable, GEN, "--preset", "tiny", "--out", out] + list(extra),
                   check=True, stdout=subprocess.DEVNULL)


def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        header = next(r)
        return header, [dict(zip(header, row)) for row in r]


def digest(folder):
    h = {}
    for base, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                h[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return h


def bad_value(feed, row):
    """Why ingest would reject the row, or None."""
    for col in REQUIRED[feed].split():
        if not row[col]:
            return "missing " + col
    for col, v in row.items():
        if col in MONEY and v and not re.fullmatch(r"\d+(\.\d{1,2})?", v):
            return "money " + col
        if col in DATES and v:
            try:
                datetime.date.fromisoformat(v)
            except ValueError:
                return "date " + col
        if col == "period" and v and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", v):
            return "period"
    return None


class GenProvinceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "a")
        generate(cls.out, "--seed", "5")
        cls.gen = load_generator()
        cls.header = {}
        cls.rows = {}
        for feed in SPEC_COLUMNS:
            cls.header[feed], cls.rows[feed] = read(os.path.join(cls.out, feed + ".csv"))
        cls.truth = {feed: read(os.path.join(cls.out, "truth", feed + ".csv"))[1]
                     for feed in SPEC_COLUMNS if feed != "registry"}
        cls.people = {r["id_number"]: r for r in cls.rows["registry"]}
        with open(os.path.join(ROOT, "data", "regions", "gansu_62_towns.csv"),
                  encoding="utf-8") as f:
            cls.towns = {r["town_code"] for r in csv.DictReader(f)}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_deterministic_for_a_seed(self):
        again = os.path.join(self.tmp.name, "b")
        other = os.path.join(self.tmp.name, "c")
        generate(again, "--seed", "5")
        generate(other, "--seed", "6")
        first, second, third = digest(self.out), digest(again), digest(other)
        self.assertEqual(len(first), 17)  # 8 feeds, 7 truth files, villages, the summary
        self.assertEqual(first, second)
        self.assertNotEqual(first["registry.csv"], third["registry.csv"])
        self.assertNotEqual(first["medical.csv"], third["medical.csv"])

    def test_columns_match_spec(self):
        for feed, cols in SPEC_COLUMNS.items():
            self.assertEqual(self.header[feed], cols.split(), feed)

    def test_registry_ids_agree_with_region_and_birth(self):
        month_start = datetime.date(2026, 9, 1)
        self.assertEqual(len(self.people), len(self.rows["registry"]), "IDs are unique")
        for r in self.rows["registry"]:
            idn, region = r["id_number"], r["region_code"]
            self.assertTrue(id_valid(idn), idn)
            self.assertRegex(region, r"^\d{12}$")
            self.assertEqual(idn[:6], region[:6], "ID region is the household's county")
            self.assertIn(region[:9], self.towns, "a real town")
            self.assertGreaterEqual(int(region[9:]), 201)
            birth = datetime.date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14]))
            self.assertLess(birth, month_start)
            self.assertGreaterEqual(birth.year, 1920)
            self.assertTrue(r["name"] and len(r["name"]) in (2, 3), r["name"])

    def test_households(self):
        by_household = collections.defaultdict(list)
        for r in self.rows["registry"]:
            by_household[r["household_id"]].append(r)
        sizes = [len(v) for v in by_household.values()]
        self.assertEqual(len(sizes), 300)
        self.assertTrue(all(1 <= s <= 8 for s in sizes))
        self.assertTrue(3.0 <= sum(sizes) / len(sizes) <= 3.7, sum(sizes) / len(sizes))
        exited = 0
        for members in by_household.values():
            self.assertEqual([m["relation"] for m in members].count("户主"), 1)
            self.assertEqual(members[0]["relation"], "户主")
            self.assertEqual(len({m["region_code"] for m in members}), 1)
            kind = members[0]["household_type"]
            self.assertIn(kind, ("脱贫户", "一般农户"))
            for m in members:
                if kind == "脱贫户":
                    self.assertTrue(2014 <= int(m["exit_year"]) <= 2020)
                else:
                    self.assertEqual(m["exit_year"], "")
            exited += kind == "脱贫户"
        self.assertTrue(0.15 < exited / len(by_household) < 0.45)

    def test_truth_covers_every_row(self):
        for feed, truth in self.truth.items():
            rows = self.rows[feed]
            self.assertEqual(len(truth), len(rows), feed)
            for i, (row, t) in enumerate(zip(rows, truth), start=1):
                self.assertEqual(t["row"], str(i))
                self.assertEqual(t["record_id"], row["record_id"])
            self.assertEqual(len({r["record_id"] for r in rows}), len(rows), feed)

    def test_villages_have_names(self):
        with open(os.path.join(self.out, "villages.csv"), encoding="utf-8") as f:
            villages = list(csv.DictReader(f))
        codes = {r["region_code"] for r in self.rows["registry"]}
        named = {v["village_code"]: v for v in villages}
        self.assertEqual(len(named), len(villages))
        self.assertTrue(codes <= set(named), "every household's village is in villages.csv")
        for v in villages:
            self.assertEqual(v["village_code"][:9], v["town_code"])
            self.assertIn(v["town_code"], self.towns)
            self.assertTrue(v["village_name"].endswith("村"), v)
        per_town = {}
        for v in villages:
            per_town.setdefault(v["town_code"], set()).add(v["village_name"])
        self.assertEqual(sum(len(n) for n in per_town.values()), len(villages),
                         "no two villages of a town share a name")

    def test_medical_is_most_of_the_month(self):
        counts = {f: len(v) for f, v in self.rows.items() if f != "registry"}
        self.assertEqual(sum(counts.values()), 3000)
        self.assertGreater(counts["medical"], 0.6 * 3000)
        self.assertTrue(all(counts[f] > 0 for f in counts), counts)
        with open(os.path.join(self.out, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        self.assertEqual(summary["rows"]["medical"], counts["medical"])
        self.assertEqual(summary["persons"], len(self.rows["registry"]))

    def test_clean_rows_are_their_true_person(self):
        checked = outsiders = 0
        for feed, truth in self.truth.items():
            for row, t in zip(self.rows[feed], truth):
                if t["identity"] or t["dirty"]:
                    continue
                self.assertIsNone(bad_value(feed, row), (feed, row))
                if feed == "visit":
                    self.assertEqual(row["household_id"], t["household_id"])
                    continue
                if not t["person_id"]:
                    # Not in the registry: a valid ID no registry person has.
                    self.assertTrue(id_valid(row["id_number"]))
                    self.assertNotIn(row["id_number"], self.people)
                    outsiders += 1
                    continue
                person = self.people[t["person_id"]]
                self.assertEqual(row["id_number"], t["person_id"])
                self.assertEqual(person["household_id"], t["household_id"])
                self.assertEqual(person["region_code"], t["region_code"])
                if "name" in row:
                    self.assertEqual(row["name"], person["name"])
                checked += 1
        self.assertGreater(checked, 2000)
        self.assertGreater(outsiders, 10)

    def test_corrupted_identities(self):
        trad = dict(zip(self.gen.TRAD_FROM, self.gen.TRAD_TO))
        groups = [set(g) for g in self.gen.HOMOPHONE_GROUPS.split()]
        seen = collections.Counter()
        for feed, truth in self.truth.items():
            for row, t in zip(self.rows[feed], truth):
                if not t["identity"] or not t["person_id"]:
                    continue
                self.assertEqual(t["dirty"], "")
                person = self.people[t["person_id"]]
                kinds = t["identity"].split("+")
                self.assertTrue(set(kinds) <= IDENTITY_KINDS, kinds)
                idn, true_id = row["id_number"], t["person_id"]
                name, true_name = row.get("name"), person["name"]
                for kind in kinds:
                    seen[kind] += 1
                    if kind == "id_swap":
                        self.assertEqual(len(idn), 18)
                        self.assertFalse(id_valid(idn), "a swap fails the check")
                        diff = [i for i in range(18) if idn[i] != true_id[i]]
                        self.assertEqual(len(diff), 2)
                        self.assertEqual(diff[1], diff[0] + 1)
                        self.assertEqual(idn[diff[0]], true_id[diff[1]])
                    elif kind == "old_id15":
                        self.assertRegex(idn, r"^\d{15}$")
                        self.assertEqual(idn[:6] + "19" + idn[6:] + check_char(
                            idn[:6] + "19" + idn[6:]), true_id)
                    elif kind == "missing_id":
                        self.assertEqual(idn, "")
                        self.assertEqual(name, true_name)
                    elif kind == "traditional":
                        self.assertEqual(name, "".join(trad.get(c, c) for c in true_name))
                        self.assertNotEqual(name, true_name)
                    else:
                        self.assertEqual(len(name), len(true_name))
                        diff = [i for i in range(len(name)) if name[i] != true_name[i]]
                        self.assertEqual(len(diff), 1, (name, true_name))
                        same_sound = any(name[diff[0]] in g and true_name[diff[0]] in g
                                         for g in groups)
                        self.assertEqual(same_sound, kind == "homophone", (name, true_name))
                if not set(kinds) & {"id_swap", "old_id15", "missing_id"}:
                    self.assertEqual(idn, true_id)
        self.assertEqual(set(seen), IDENTITY_KINDS, seen)

    def test_dirty_rows_are_bad(self):
        dirty = 0
        for feed, truth in self.truth.items():
            for row, t in zip(self.rows[feed], truth):
                if t["dirty"]:
                    self.assertIsNotNone(bad_value(feed, row), (feed, t["dirty"], row))
                    dirty += 1
        self.assertTrue(10 <= dirty <= 60, dirty)


if __name__ == "__main__":
    unittest.main()
