"""PDFs -> pages -> chunks -> embeddings -> FAISS store (with chunk metadata and a manifest)."""
