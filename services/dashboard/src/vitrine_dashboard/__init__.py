"""The dashboard service (数据大屏): live numbers per creator, merchant, session and product."""
