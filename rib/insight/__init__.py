"""Insight for people: the paper's Section 3 on the ingested data (`section3`), the case study of
Figure 8 (`explain`), training curves (`plots`) and one self-contained HTML report per run (`report`)."""
