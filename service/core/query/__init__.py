"""The query language: parse (parser.py), compile into one index (index.py), match (match.py)."""
