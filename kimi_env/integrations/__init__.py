"""Adapters to the libraries users already train with (each one optional; none is imported by ``import kimi_env``).

* :mod:`kimi_env.integrations.sb3`: :class:`~kimi_env.integrations.sb3.MacroActionWrapper`, numeric observations and
  discrete macro-actions for Stable-Baselines3 (extra ``sb3``), and a PPO baseline (``kimi-env sb3-ppo``).
* :mod:`kimi_env.integrations.trl`: an ``environment_factory`` for TRL's stock ``GRPOTrainer`` and task pools as a
  ``datasets.Dataset`` (extra ``train``).
* :mod:`kimi_env.integrations.chat_templates`: tool-call protocols of the ChatML/Qwen (Hermes), Llama-3 and Mistral
  chat-template families, and conversion of an episode to structured chat messages for ``apply_chat_template``.
* :mod:`kimi_env.integrations.mcp`: :class:`~kimi_env.integrations.mcp.MCPTool` (any MCP server's tools inside an
  environment) and ``kimi-env mcp-serve`` (our tools as an MCP server) (extra ``mcp``).
"""
