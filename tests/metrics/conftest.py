from tests.threads import _one_thread  # noqa: F401  (autouse: one torch thread for these tests)
