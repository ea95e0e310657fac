"""The citizen's pages about cases: filing, my cases, the case page, the decision notice."""
