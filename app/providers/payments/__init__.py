"""Payment providers behind one protocol (`base.PaymentProvider`), as the clouds are.

The adapter for Stripe (`stripe_payments`, through the official `stripe` SDK) takes its secret key and API
address as arguments and reads no database. Which account serves which tenant is decided in
`app.services.payments`.
"""
