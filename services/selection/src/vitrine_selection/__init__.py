"""The selection center (选品中心): a read model of offers that creators browse and search."""
