"""Cluster DNS (the seed's kube-dns): records from the store, a server built on dnspython."""
