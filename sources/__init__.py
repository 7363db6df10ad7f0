"""What produces data: SSE clients, the local firehoses and the event normalizers."""
