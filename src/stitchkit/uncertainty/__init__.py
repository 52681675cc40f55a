"""How sure each number is: bootstrap intervals from per-sample statistics, permutation nulls for the
similarity indices, and the robustness of the findings' verdicts (torch-free)."""
