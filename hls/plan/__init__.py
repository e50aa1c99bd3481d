"""Planning: integer model + board -> engine plan, memory maps, layouts, the Zynq system, the
whole-model plan and its op program. Imports only the runtime (no torch in planning)."""
