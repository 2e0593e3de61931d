"""Key custody adapters: KMS providers (``aws_kms``) and PKCS#11 tokens (``pkcs11_token``),
found by name through ``registry``. Each imports its optional client library (boto3,
python-pkcs11) only when used, and says which extra to install when it is missing."""
