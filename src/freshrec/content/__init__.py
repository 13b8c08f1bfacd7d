"""Item content: encoders (text, categories, attributes -> vectors), the per-item cache, and the mapping
from content vectors into the model's item space that makes a new item recommendable at upsert."""
