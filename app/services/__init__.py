"""Every write and every rule. Services take plain values, own the transaction and record what they did."""
