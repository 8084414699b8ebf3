"""Deterministic generator for the bundled loan-default sample data.

Produces a synthetic, realistic-looking tabular binary-classification problem
(will a personal loan default?) with PII columns, a sensitive attribute,
numeric and categorical features and a 0/1 target.  Only numpy and the
standard library are used, so the data can be (re)built with no network and
no pandas.

``generate()`` returns a column-oriented ``dict[str, list]`` of plain Python
values (``str``, ``int``, ``float``), keys in the order of ``COLUMNS``.
``write_csv()`` writes such a table with a fixed per-column number format, so
the output bytes depend only on ``(n_rows, seed, drift)`` for a given numpy
release.  (numpy does not promise identical ``Generator`` streams across
releases; if a numpy upgrade ever changes them, regenerate the files and
commit the result -- ``tests/unit/test_sample_data.py`` will flag it.)

Run ``python data/generate.py`` to rewrite ``loans.csv`` (6,000 rows, seed 7)
``loans_drifted.csv`` (2,000 rows, seed 11, drifted) and ``loans_holdout.csv``
(500 rows, seed 13, the reference distribution; rows no model trains on, which
the demo sends to the server) next to this script.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

PII_COLUMNS = ["name", "email", "phone"]
SENSITIVE_COLUMNS = ["gender", "age"]
NUMERIC_FEATURES = [
    "income",
    "loan_amount",
    "term_months",
    "credit_score",
    "debt_to_income",
    "num_open_accounts",
    "years_employed",
]
CATEGORICAL_FEATURES = ["employment_type", "home_ownership", "purpose", "region"]
TARGET = "default"

COLUMNS = [
    *PII_COLUMNS,
    *SENSITIVE_COLUMNS,
    *NUMERIC_FEATURES,
    *CATEGORICAL_FEATURES,
    TARGET,
]

# Decimal places used when writing float columns (all other columns are
# written with ``str()``).
FLOAT_DECIMALS = {
    "income": 2,
    "loan_amount": 2,
    "debt_to_income": 4,
    "years_employed": 1,
    "avg_days_late": 1,
    "credit_utilization": 4,
}

REFERENCE_FILE = "loans.csv"
REFERENCE_ROWS = 6_000
REFERENCE_SEED = 7
DRIFTED_FILE = "loans_drifted.csv"
DRIFTED_ROWS = 2_000
DRIFTED_SEED = 11
HOLDOUT_FILE = "loans_holdout.csv"
HOLDOUT_ROWS = 500
HOLDOUT_SEED = 13

# --------------------------------------------------------------------------
# Built-in vocabularies
# --------------------------------------------------------------------------

FEMALE_FIRST_NAMES = [
    "Aisha",
    "Fatima",
    "Mariam",
    "Noura",
    "Layla",
    "Huda",
    "Sara",
    "Amna",
    "Priya",
    "Anjali",
    "Deepa",
    "Sana",
    "Maria",
    "Grace",
    "Joy",
    "Emma",
    "Olivia",
    "Sophie",
    "Elena",
    "Hana",
]
MALE_FIRST_NAMES = [
    "Mohammed",
    "Ahmed",
    "Omar",
    "Khalid",
    "Yousef",
    "Hamad",
    "Saeed",
    "Ali",
    "Rahul",
    "Arjun",
    "Vikram",
    "Imran",
    "Jose",
    "Mark",
    "John",
    "James",
    "Daniel",
    "Lucas",
    "Ivan",
    "Kenji",
]
LAST_NAMES = [
    "Al Mansoori",
    "Al Nuaimi",
    "Al Hashemi",
    "Al Shamsi",
    "Al Ketbi",
    "Haddad",
    "Khoury",
    "Nasser",
    "Farouk",
    "Saleh",
    "Sharma",
    "Patel",
    "Nair",
    "Khan",
    "Iyer",
    "Santos",
    "Reyes",
    "Cruz",
    "Smith",
    "Brown",
    "Wilson",
    "Taylor",
    "Petrov",
    "Rossi",
    "Tanaka",
]

GENDERS = ["female", "male"]
EMPLOYMENT_TYPES = ["salaried", "self_employed", "contract", "unemployed"]
HOME_OWNERSHIP = ["rent", "own", "mortgage"]
PURPOSES = ["car", "home", "education", "business", "personal", "medical"]
REGIONS = ["dubai", "abu_dhabi", "sharjah", "other_emirates"]
TERMS = [12, 24, 36, 48, 60]

# Category mixes: reference vs. drifted batch.
EMPLOYMENT_P = {False: [0.64, 0.17, 0.13, 0.06], True: [0.50, 0.22, 0.19, 0.09]}
PURPOSE_P = {
    False: [0.24, 0.14, 0.12, 0.10, 0.30, 0.10],
    True: [0.14, 0.08, 0.10, 0.16, 0.36, 0.16],
}
REGION_P = [0.42, 0.27, 0.17, 0.14]
TERM_P = [0.12, 0.22, 0.30, 0.18, 0.18]

# Per-category effects.
EMPLOYMENT_INCOME = {
    "salaried": 0.0,
    "self_employed": 0.10,
    "contract": -0.12,
    "unemployed": -0.95,
}
REGION_INCOME = {
    "dubai": 0.12,
    "abu_dhabi": 0.10,
    "sharjah": -0.08,
    "other_emirates": -0.15,
}
# Typical loan size as a fraction of annual income, by purpose.
PURPOSE_LOAN_RATIO = {
    "car": 0.55,
    "home": 1.60,
    "education": 0.40,
    "business": 0.80,
    "personal": 0.30,
    "medical": 0.22,
}

# Target model: logit coefficients for the reference batch and the (mildly
# different) drifted one.  Neither uses gender or age directly.
_COEF = {
    False: {
        "intercept": -1.52,
        "credit": -0.0125,  # per point above 680
        "dti": 4.2,  # per unit above 0.30
        "loan_ratio": 0.80,  # per unit of log(loan/income)
        "years_employed": -0.035,  # per year
        "accounts": 0.07,  # per account above 4
        "employment": {
            "salaried": 0.0,
            "self_employed": 0.30,
            "contract": 0.45,
            "unemployed": 1.20,
        },
        "purpose": {
            "car": -0.15,
            "home": -0.30,
            "education": 0.05,
            "business": 0.40,
            "personal": 0.15,
            "medical": 0.30,
        },
        "home": {"rent": 0.15, "own": -0.20, "mortgage": 0.0},
    },
    True: {
        "intercept": -1.95,
        "credit": -0.0100,
        "dti": 5.2,
        "loan_ratio": 0.95,
        "years_employed": -0.025,
        "accounts": 0.10,
        "employment": {
            "salaried": 0.0,
            "self_employed": 0.45,
            "contract": 0.60,
            "unemployed": 1.00,
        },
        "purpose": {
            "car": -0.10,
            "home": -0.30,
            "education": 0.10,
            "business": 0.55,
            "personal": 0.20,
            "medical": 0.25,
        },
        "home": {"rent": 0.20, "own": -0.20, "mortgage": 0.0},
    },
}


def _pick(
    rng: np.random.Generator, options: list, p: list[float], n: int
) -> np.ndarray:
    """Draw ``n`` items from ``options`` with probabilities ``p`` (as an object array)."""
    idx = rng.choice(len(options), size=n, p=np.asarray(p, dtype=float))
    return np.asarray(options, dtype=object)[idx]


def _lookup(values: np.ndarray, table: dict) -> np.ndarray:
    return np.array([table[v] for v in values], dtype=float)


def generate(n_rows: int, *, seed: int, drift: bool = False) -> dict[str, list]:
    """Generate ``n_rows`` synthetic loan applications.

    Returns a column-oriented ``dict[str, list]`` with keys in ``COLUMNS``
    order and plain Python values.  The same ``(n_rows, seed, drift)`` always
    gives the same table.  ``drift=True`` shifts the feature distributions
    (lower income and credit score, higher debt-to-income, a riskier purpose
    and employment mix) and mildly changes the target relationship; age,
    gender, term, home ownership and region keep their distributions.
    """
    if n_rows < 0:
        raise ValueError("n_rows must be >= 0")
    drift = bool(drift)
    rng = np.random.default_rng(seed)
    n = n_rows

    # Sensitive attributes (identical distribution in both batches).
    gender = _pick(rng, GENDERS, [0.46, 0.54], n)
    age = np.clip(
        np.round(rng.gamma(shape=6.0, scale=3.3, size=n) + 20.0), 21, 75
    ).astype(int)

    # PII.
    female = gender == "female"
    first_f = rng.integers(0, len(FEMALE_FIRST_NAMES), size=n)
    first_m = rng.integers(0, len(MALE_FIRST_NAMES), size=n)
    last_i = rng.integers(0, len(LAST_NAMES), size=n)
    email_no = rng.integers(1, 100, size=n)
    phone_op = rng.choice([0, 2, 4, 5, 6, 8], size=n)
    phone_a = rng.integers(0, 1000, size=n)
    phone_b = rng.integers(0, 10000, size=n)
    first = [
        FEMALE_FIRST_NAMES[f] if is_f else MALE_FIRST_NAMES[m]
        for is_f, f, m in zip(female, first_f, first_m, strict=False)
    ]
    last = [LAST_NAMES[i] for i in last_i]
    name = [f"{a} {b}" for a, b in zip(first, last, strict=False)]
    email = [
        f"{a.lower()}.{b.lower().replace(' ', '')}{k}@example.com"
        for a, b, k in zip(first, last, email_no, strict=False)
    ]
    phone = [
        f"+971-5{o}-{a:03d}-{b:04d}" for o, a, b in zip(phone_op, phone_a, phone_b, strict=False)
    ]

    # Categorical features.
    employment = _pick(rng, EMPLOYMENT_TYPES, EMPLOYMENT_P[drift], n)
    purpose = _pick(rng, PURPOSES, PURPOSE_P[drift], n)
    region = _pick(rng, REGIONS, REGION_P, n)
    # Home ownership depends on age only (so it does not drift).
    u_home = rng.random(n)
    p_own = np.clip(0.05 + 0.006 * (age - 21), 0.05, 0.40)
    p_mortgage = np.clip(0.10 + 0.010 * (age - 21), 0.10, 0.40)
    home = np.where(
        u_home < p_own, "own", np.where(u_home < p_own + p_mortgage, "mortgage", "rent")
    ).astype(object)
    term = _pick(rng, TERMS, TERM_P, n).astype(int)

    # Employment history, bounded by working life.
    career = np.maximum(age - 20, 0.5)
    years_employed = np.round(career * rng.beta(2.0, 2.5, size=n), 1)
    years_employed = np.where(
        employment == "unemployed", np.round(years_employed * 0.3, 1), years_employed
    )

    # Income: lognormal around ~AED 110k, depending on age, job and region.
    log_income = (
        math.log(110_000.0)
        + 0.012 * (age - 35)
        + _lookup(employment, EMPLOYMENT_INCOME)
        + _lookup(region, REGION_INCOME)
        + rng.normal(0.0, 0.45, size=n)
    )
    if drift:
        log_income += math.log(0.85)  # income down ~15 %
    income = np.round(np.clip(np.exp(log_income), 12_000.0, 2_500_000.0), 2)

    # Credit score: driven by age, tenure and job, plus noise.
    credit_mean = 680.0 - (40.0 if drift else 0.0)
    credit = (
        credit_mean
        + 1.2 * (age - 35)
        + 1.5 * (years_employed - 6)
        - 35.0 * (employment == "unemployed")
        + rng.normal(0.0, 62.0, size=n)
    )
    credit_score = np.clip(np.round(credit), 300, 850).astype(int)

    # Loan amount relative to income, by purpose.
    loan_ratio = _lookup(purpose, PURPOSE_LOAN_RATIO) * np.exp(
        rng.normal(0.0, 0.45, size=n)
    )
    loan_amount = np.round(np.clip(income * loan_ratio, 2_000.0, 5_000_000.0), 2)

    # Debt-to-income: existing debt load plus this loan's yearly repayment share.
    dti_base = rng.beta(2.2, 6.5, size=n) + (0.06 if drift else 0.0)
    repayment_share = (loan_amount / income) / (term / 12.0) * 0.35
    dti = np.round(np.clip(dti_base + repayment_share, 0.0, 1.0), 4)

    num_open_accounts = rng.poisson(
        2.0 + 0.05 * np.minimum(age - 21, 40) + 0.8 * (dti_base > 0.35), size=n
    ).astype(int)

    # Target: logistic function of the features (never of gender/age directly).
    c = _COEF[drift]
    logit = (
        c["intercept"]
        + c["credit"] * (credit_score - 680)
        + c["dti"] * (dti - 0.30)
        + c["loan_ratio"] * np.log(loan_amount / income)
        + c["years_employed"] * years_employed
        + c["accounts"] * (num_open_accounts - 4)
        + _lookup(employment, c["employment"])
        + _lookup(purpose, c["purpose"])
        + _lookup(home, c["home"])
        + rng.normal(0.0, 0.6, size=n)  # unobserved factors
    )
    p_default = 1.0 / (1.0 + np.exp(-logit))
    default = (rng.random(n) < p_default).astype(int)

    table = {
        "name": name,
        "email": email,
        "phone": phone,
        "gender": [str(v) for v in gender],
        "age": [int(v) for v in age],
        "income": [float(v) for v in income],
        "loan_amount": [float(v) for v in loan_amount],
        "term_months": [int(v) for v in term],
        "credit_score": [int(v) for v in credit_score],
        "debt_to_income": [float(v) for v in dti],
        "num_open_accounts": [int(v) for v in num_open_accounts],
        "years_employed": [float(v) for v in years_employed],
        "employment_type": [str(v) for v in employment],
        "home_ownership": [str(v) for v in home],
        "purpose": [str(v) for v in purpose],
        "region": [str(v) for v in region],
        "default": [int(v) for v in default],
    }
    assert list(table) == COLUMNS
    return table


def _format(column: str, value) -> str:
    decimals = FLOAT_DECIMALS.get(column)
    if decimals is not None:
        return f"{float(value):.{decimals}f}"
    return str(value)


def write_csv(path, table: dict[str, list]) -> Path:
    """Write a column-oriented table to ``path`` as UTF-8 CSV with ``\\n`` line endings."""
    path = Path(path)
    columns = list(table)
    lengths = {len(table[c]) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for i in range(n):
            writer.writerow([_format(c, table[c][i]) for c in columns])
    return path


def write_all(out_dir) -> list[Path]:
    """Write the three bundled files into ``out_dir`` and return their paths."""
    out_dir = Path(out_dir)
    return [
        write_csv(
            out_dir / REFERENCE_FILE,
            generate(REFERENCE_ROWS, seed=REFERENCE_SEED, drift=False),
        ),
        write_csv(
            out_dir / DRIFTED_FILE,
            generate(DRIFTED_ROWS, seed=DRIFTED_SEED, drift=True),
        ),
        write_csv(
            out_dir / HOLDOUT_FILE,
            generate(HOLDOUT_ROWS, seed=HOLDOUT_SEED, drift=False),
        ),
    ]


# --------------------------------------------------------------------------
# The customer entity: monthly history snapshots and loan applications
# --------------------------------------------------------------------------

CUSTOMERS_FILE = "customers.csv"
APPLICATIONS_FILE = "applications.csv"
FEATURES_SEED = 17
N_CUSTOMERS = 250  # customer_id 1..250; applications also come from ids 901.. (never seen)
N_MONTHS = 18  # snapshots on the 1st of each month, the last one on HISTORY_END
HISTORY_END = (2026, 1)  # (year, month) of the last snapshot
N_APPLICATIONS = 1_600
CUSTOMER_COLUMNS = ["customer_id", "event_timestamp", "created_timestamp", "n_loans", "n_late_payments",
                    "avg_days_late", "credit_utilization", "months_as_customer"]
APPLICATION_COLUMNS = ["customer_id", "event_timestamp", "loan_amount", "term_months", "default"]


def _month(index: int) -> tuple[int, int]:
    """(year, month) of snapshot ``index`` (0 .. N_MONTHS - 1, the last one HISTORY_END)."""
    year, month = HISTORY_END
    total = year * 12 + (month - 1) - (N_MONTHS - 1 - index)
    return total // 12, total % 12 + 1


def _stamp(year: int, month: int, day: int = 1, hour: int = 0, minute: int = 0) -> str:
    return f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:00"


def _default_logit(history: dict[str, float], loan_amount: float, term_months: int) -> float:
    """The applicant's risk, from the history AS OF the application (and the request)."""
    return (-2.3 + 0.45 * history["n_late_payments"] + 0.035 * history["avg_days_late"]
            + 2.6 * (history["credit_utilization"] - 0.4) - 0.012 * history["months_as_customer"]
            + 0.10 * history["n_loans"] + 0.55 * math.log(loan_amount / term_months / 600.0))


def generate_features(seed: int = FEATURES_SEED) -> tuple[dict[str, list], dict[str, list]]:
    """The customer history and the loan applications, as two column-oriented tables.

    Each customer has a latent risk that drifts month by month; a snapshot on the 1st of
    each month aggregates the trailing 12 months (late payments, mean days late) and the
    current state (loans, credit utilisation, tenure). About 3% of the snapshots are
    corrected later: a second row with the same event time and a later created time,
    which is the truth. Some customers stop having snapshots (churned, so their history is
    older than a 120-day TTL at the end). Each application's ``default`` is drawn from the
    customer's corrected snapshot as of the application's time, so only a point-in-time
    join recovers the signal; applications from unknown customers (ids 901..) and from
    long-churned ones have no usable history.
    """
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 10, size=N_CUSTOMERS)  # first snapshot's month index
    churned = rng.random(N_CUSTOMERS) < 0.12
    last = np.where(churned, np.maximum(first + 2, rng.integers(4, 11, size=N_CUSTOMERS)), N_MONTHS - 1)
    base_risk = rng.normal(0.0, 1.0, size=N_CUSTOMERS)
    trend = rng.normal(0.0, 0.18, size=N_CUSTOMERS)  # per month: some customers get worse, some better
    tenure0 = rng.integers(0, 48, size=N_CUSTOMERS)
    loans0 = rng.poisson(1.2, size=N_CUSTOMERS)

    customers: dict[str, list] = {c: [] for c in CUSTOMER_COLUMNS}
    truth: dict[int, list[tuple[int, dict[str, float]]]] = {}  # customer -> [(month index, snapshot)]
    for c in range(N_CUSTOMERS):
        customer_id = c + 1
        late_days: list[list[int]] = []  # per month, the days late of each late payment
        n_loans = int(loans0[c])
        utilization = float(np.clip(0.35 + 0.12 * base_risk[c] + rng.normal(0.0, 0.08), 0.01, 0.99))
        history = []
        for j in range(int(first[c]), int(last[c]) + 1):
            risk = base_risk[c] + trend[c] * (j - first[c])
            late = rng.poisson(math.exp(-1.9 + 0.75 * risk))
            late_days.append([int(d) for d in rng.integers(3, 10 + int(max(risk, 0) * 25), size=late)])
            window = [d for month in late_days[-12:] for d in month]
            n_loans += int(rng.random() < 0.06)
            utilization = float(np.clip(0.7 * utilization + 0.3 * (0.35 + 0.15 * risk) + rng.normal(0.0, 0.05),
                                        0.01, 0.99))
            snapshot = {"n_loans": n_loans, "n_late_payments": len(window),
                        "avg_days_late": round(sum(window) / len(window), 1) if window else 0.0,
                        "credit_utilization": round(utilization, 4),
                        "months_as_customer": int(tenure0[c]) + j - int(first[c])}
            year, month = _month(j)
            corrected = j < N_MONTHS - 2 and rng.random() < 0.03
            rows = [(_stamp(year, month, 1, 6), snapshot)]
            if corrected:  # the first figures were wrong; the correction is the truth
                wrong = {**snapshot, "n_late_payments": max(0, snapshot["n_late_payments"] - 2),
                         "credit_utilization": round(max(0.01, snapshot["credit_utilization"] - 0.2), 4)}
                rows = [(_stamp(year, month, 1, 6), wrong), (_stamp(year, month, 4, 9), snapshot)]
            for created, values in rows:
                customers["customer_id"].append(customer_id)
                customers["event_timestamp"].append(_stamp(year, month))
                customers["created_timestamp"].append(created)
                for name in CUSTOMER_COLUMNS[3:]:
                    customers[name].append(values[name])
            history.append((j, snapshot))
        truth[customer_id] = history

    applications: dict[str, list] = {c: [] for c in APPLICATION_COLUMNS}
    drawn = []
    for _ in range(N_APPLICATIONS):
        kind = rng.random()
        if kind < 0.03:  # someone the history has never seen
            customer_id, j = int(rng.integers(901, 941)), int(rng.integers(0, N_MONTHS - 1))
        else:
            c = int(rng.integers(0, N_CUSTOMERS))
            customer_id = c + 1
            if churned[c] and kind < 0.12 and last[c] + 5 < N_MONTHS - 1:  # long after they left
                j = int(rng.integers(last[c] + 5, N_MONTHS - 1))
            else:
                j = int(rng.integers(first[c], last[c] + 1)) if last[c] < N_MONTHS - 1 else \
                    int(rng.integers(first[c], N_MONTHS - 1))
        day, hour, minute = int(rng.integers(2, 28)), int(rng.integers(8, 20)), int(rng.integers(0, 60))
        term = int(TERMS[int(rng.choice(len(TERMS), p=TERM_P))])
        amount = round(float(np.clip(np.exp(rng.normal(math.log(18_000.0), 0.6)), 1_000.0, 250_000.0)), 2)
        known = [snapshot for month, snapshot in truth.get(customer_id, []) if month <= j]
        risk_now = known[-1] if known else {"n_loans": 1, "n_late_payments": 2, "avg_days_late": 8.0,
                                            "credit_utilization": 0.5, "months_as_customer": 0}
        logit = _default_logit(risk_now, amount, term) + rng.normal(0.0, 0.5)
        default = int(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
        year, month = _month(j)
        drawn.append((_stamp(year, month, day, hour, minute), customer_id, amount, term, default))
    for stamp, customer_id, amount, term, default in sorted(drawn):
        applications["event_timestamp"].append(stamp)
        applications["customer_id"].append(customer_id)
        applications["loan_amount"].append(amount)
        applications["term_months"].append(term)
        applications["default"].append(default)
    return ({c: customers[c] for c in CUSTOMER_COLUMNS}, {c: applications[c] for c in APPLICATION_COLUMNS})


def write_features(out_dir) -> list[Path]:
    """Write customers.csv and applications.csv into ``out_dir`` and return their paths."""
    out_dir = Path(out_dir)
    customers, applications = generate_features()
    return [write_csv(out_dir / CUSTOMERS_FILE, customers), write_csv(out_dir / APPLICATIONS_FILE, applications)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate the bundled loan-default sample data."
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write loans.csv, loans_drifted.csv, loans_holdout.csv, customers.csv and applications.csv "
             "into (default: this script's folder)",
    )
    args = parser.parse_args(argv)
    for path in [*write_all(args.out_dir), *write_features(args.out_dir)]:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
