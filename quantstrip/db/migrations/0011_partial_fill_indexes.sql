-- Storing a fill writes only the index pages it needs (issue 15): indexes a plain fill does not
-- need are partial. The correction-group index holds only fills an adapter put in a group of its
-- broker's making (IB); the order index only fills of a known order (a query on order_id = ?
-- implies order_id IS NOT NULL, so it still uses the index).
DROP INDEX ix_executions_base;
CREATE INDEX ix_executions_base ON executions (broker, account_id, base_exec_id)
    WHERE base_exec_id <> exec_id;
DROP INDEX ix_executions_order;
CREATE INDEX ix_executions_order ON executions (order_id) WHERE order_id IS NOT NULL;
