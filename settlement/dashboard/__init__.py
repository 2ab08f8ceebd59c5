"""The operations and finance dashboard at /admin/dashboard/ (docs/dashboard.md).

It lives in settlement, the top layer, because it reads every app's figures: the ledger's daily
aggregates (points.aggregates), settlement's clearing lines (the cross-BU flow), the mall's
orders and the tiers. `selectors` computes, `views` renders or exports, `exports` writes CSV/XLSX.
"""
