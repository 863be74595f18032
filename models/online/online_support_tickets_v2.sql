{{ featurekit.online_table(ref('support_tickets', v=2)) }}
