"""The pytest face of the parity registry: every registered case, every config, both dtypes."""

import pytest

torch = pytest.importorskip("torch")

from parity._case import DTYPES, load_all  # noqa: E402
from parity._compare import case_dtypes, run_config  # noqa: E402

CASES = load_all()
PARAMS = [pytest.param(name, cfg.id, d, id=f"{name}[{cfg.id}]-{d}")
          for name, case in CASES.items() for d in case_dtypes(case, DTYPES) for cfg in case.configs]


@pytest.mark.parametrize("name,config_id,dtype", PARAMS)
def test_parity(name, config_id, dtype):
  case = CASES[name]
  config = next(c for c in case.configs if c.id == config_id)
  res = run_config(case, config, dtype)
  assert res.passed, (f"{name}[{config_id}] {dtype}: rel {res.worst_rel:.3e} abs {res.worst_abs:.3e}"
                      f" > tol {res.tolerance:.0e}. {res.message}")
