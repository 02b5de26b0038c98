"""Building blocks every account uses: keys, buckets, IAM documents, providers, the baseline, handler packages."""
