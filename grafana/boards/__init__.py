"""One module per dashboard; each ``build`` returns the board as an SDK builder.

Two rules shape every query:

* ``product_*`` gauges are global - every worker reports the same
  whole-pipeline value - so they are de-duplicated with ``max by (...)``,
  never summed across instances.
* ``leadline_*`` health metrics are per worker, so they are summed.
"""
