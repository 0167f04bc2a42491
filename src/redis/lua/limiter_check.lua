-- LimiterStore::check: the decision, counting nothing.
return decide()
