-- title: Commission analysis
-- description: Commissions per strategy and month, with traded notional and cost in basis points.
SELECT strategy, month,
       COUNT(*)                                          AS fills,
       ROUND(SUM(notional), 2)                           AS notional,
       ROUND(SUM(commission), 2)                         AS commission,
       ROUND(SUM(commission) * 10000 / NULLIF(SUM(notional), 0), 3) AS commission_bps
FROM v_commissions
GROUP BY strategy, month
ORDER BY month DESC, strategy
