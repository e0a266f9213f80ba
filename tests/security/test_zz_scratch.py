import pytest
import test_sec_fuzz as f
from hypothesis import reject


def test_explore(server, monkeypatch):
    orig = f.schema_call = None
    import schemathesis.generation.case as c
    real = c.Case.call_and_validate

    def patched(self, *a, **kw):
        vals = list((self.query or {}).values()) + list((self.path_parameters or {}).values())
        if any(isinstance(v, int) and abs(v) >= 2**63 for v in vals):
            reject()
        return real(self, *a, **kw)

    monkeypatch.setattr(c.Case, "call_and_validate", patched)
    st = f.fuzz(server, monkeypatch, 1000, derandomize=False)
    print("\n".join(f"{n:5d}  {k}" for k, n in sorted(st.items())))
