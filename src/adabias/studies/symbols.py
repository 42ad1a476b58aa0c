"""The one table of hyperparameter symbols, for legends, titles and report notes."""

#: The hyperparameters' symbols in the papers' notation (CKS: h, β, ρ, ε; LWL: η, β₁, β₂, λ),
#: keyed by the names adabias uses for them.
SYMBOLS = {
    "learning_rate": "h",
    "beta1": "β",
    "beta2": "ρ",
    "beta": "β",
    "rho": "ρ",
    "eps": "ε",
    "lam": "λ",
}
