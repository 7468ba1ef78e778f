"""Built-in node packs. Each pack registers through the same hooks as any plugin.

    primitives/   constants, arithmetic, comparison, text formatting, Switch, ShowValue, Wait
    sampling/     noise schedules, samplers, guidance (library + nodes)
    models/       UNet, VAE, CLIP text encoders, tokenizer, checkpoint loading (library + nodes)

A pack keeps plain library modules (no engine imports) apart from its thin
`nodes.py`, which declares the nodes and implements the `register_*` hooks.
"""
