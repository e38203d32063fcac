"""Marketplaces behind one protocol (`base.MarketplaceAdapter`), as the clouds and payments are.

`microsoft` speaks the SaaS Fulfillment API v2 (and Entra's client-credentials token endpoint); `stackit`
speaks the STACKIT Marketplace vendor API. Each takes its credentials and addresses as arguments, reads no
database and returns the portal's own types. Which connection serves which tenant is decided in
`app.services.marketplace_connections`.
"""
