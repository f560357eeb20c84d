-- title: Commission analysis
-- description: Commissions per strategy and month, with traded notional and cost in basis points.
-- Sums are exact: notional from the integer micros of v_execution_notional, commissions as
-- DECIMAL, rounded to the cent half up.
SELECT c.strategy, c.month,
       COUNT(*)                                                       AS fills,
       ROUND(SUM(n.notional_micros) * 0.000001, 2)                    AS notional,
       ROUND(SUM(CAST(c.commission AS DECIMAL(38, 6))), 2)            AS commission,
       ROUND(SUM(c.commission) * 10000 / NULLIF(SUM(c.notional), 0), 3) AS commission_bps
FROM v_commissions c
JOIN v_execution_notional n ON n.execution_id = c.execution_id
GROUP BY c.strategy, c.month
ORDER BY c.month DESC, c.strategy
