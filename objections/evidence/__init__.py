"""Evidence files: what is accepted (`checks`), where it is kept (`storage`), how it is read from
a request (`uploads`) and who may see it (`selectors`). The writes are in
`objections.services.evidence`."""
