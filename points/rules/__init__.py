"""The earning rules, a module group of its own apart from the ledger core.

- `engine`: the pure engine, from an event and the facts about the member to points and the
  terms of their lots (how rules combine is in its docstring);
- `selectors`: the active rules and default policies (cached) and the member's facts;
- `forms`, `admin`: the operators' console for rules, policies, tags and the simulator;
- `api`: the partner endpoints for events and simulations.

The models (EarningRule, ExpiryPolicy, RuleBudget, RuleAward, MemberTag) are in points.models.
Earning itself (pricing an event under the wallet lock and handing the rows to the ledger core)
is points.earning.
"""
